//! dip-web's integration tests in one binary (one link instead of four), on the shared
//! harness `dip_testkit`: the portal and the alarms in process, and `dip` processes from
//! the command line (certificates, several nodes on one database).

mod alarms;
mod certs_cli;
mod home;
mod nodes;
mod ops;
mod portal;
mod sender;
mod trail;
