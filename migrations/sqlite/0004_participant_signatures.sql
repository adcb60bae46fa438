-- A participant may require that every message sent as it comes in an X-DIP-signed
-- request (spec 8.3), whatever the channel.
ALTER TABLE participants ADD COLUMN signatures_required BOOLEAN NOT NULL DEFAULT FALSE;
