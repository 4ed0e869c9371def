#!/usr/bin/env bash
# Makes this case's signature the way `cosign sign-blob --key` does for a key pair: an ECDSA
# P-256 signature over the SHA-256 of the module's bytes, DER, base64 (plugin.wat.sig), with
# the public key beside it (signer.pub). The private key is thrown away. Rerun only to replace
# the key; the committed files are what the case uses.
set -euo pipefail
cd "$(dirname "$0")"
key=$(mktemp)
trap 'rm -f "$key"' EXIT
openssl ecparam -name prime256v1 -genkey -noout -out "$key"
openssl ec -in "$key" -pubout -out signer.pub 2>/dev/null
openssl dgst -sha256 -sign "$key" plugin.wat | base64 -w0 > plugin.wat.sig
openssl dgst -sha256 -verify signer.pub -signature <(base64 -d plugin.wat.sig) plugin.wat
