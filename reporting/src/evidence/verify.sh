#!/bin/sh
# Checks this DIP evidence bundle offline with openssl (run it in the bundle's folder).
# Every check prints a line; the script stops at the first that fails (exit status 1).
set -eu
cd "$(dirname "$0")"

fail() { echo "FAILED: $*" >&2; exit 1; }
fingerprint() { openssl x509 -in "$1" -outform DER | openssl dgst -sha256 -r | cut -d' ' -f1; }
in_evidence() { grep -qF -- "$1" evidence.json; }

# 1. The document is the platform's: its signature verifies under the platform's
#    certificate, and that certificate is the one the document names. Compare the
#    fingerprint printed here with the one the platform publishes.
openssl x509 -in platform-certificate.pem -pubkey -noout > .platform-key.pem
openssl dgst -sha256 -verify .platform-key.pem -signature evidence.json.sig evidence.json >/dev/null \
    || fail "evidence.json is not signed by platform-certificate.pem"
platform=$(fingerprint platform-certificate.pem)
in_evidence "\"signingCertificateFingerprint\": \"$platform\"" \
    || fail "platform-certificate.pem is not the certificate evidence.json names"
echo "OK evidence.json signed by the platform certificate $platform"

# 2. Each stored X-DIP signature verifies over its signed text under its signer's
#    certificate, and both are the ones evidence.json states.
for text in receipt/*.string-to-sign.txt attempts/*.string-to-sign.txt; do
    [ -f "$text" ] || continue
    sig="${text%.string-to-sign.txt}.signature.bin"
    case "$text" in
        receipt/*) cert=receipt/sender-certificate.pem ;;
        *) cert=platform-certificate.pem ;;
    esac
    [ -f "$cert" ] || fail "$text: the signer's certificate is not in the bundle"
    in_evidence "\"stringToSign\": \"$(cat "$text")\"" || fail "$text is not the text evidence.json states"
    in_evidence "\"signature\": \"$(openssl base64 -A -in "$sig")\"" || fail "$sig is not the signature evidence.json states"
    signer=$(fingerprint "$cert")
    in_evidence "\"fingerprint\": \"$signer\"" || fail "$cert is not a certificate evidence.json names"
    openssl x509 -in "$cert" -pubkey -noout > .signer-key.pem
    openssl dgst -sha256 -verify .signer-key.pem -signature "$sig" "$text" >/dev/null \
        || fail "$sig does not verify over $text under $cert"
    echo "OK $text signed by $signer"
done
rm -f .platform-key.pem .signer-key.pem
echo "All signatures verified."
