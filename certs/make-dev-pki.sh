#!/bin/sh
# make-dev-pki.sh -- the development PKI (DESIGN §8), made with the openssl command line.
#
#   certs/make-dev-pki.sh DIR     (make certs writes certs/dev/)
#
# Writes into DIR: ca.pem/ca.key (a development CA), server.pem/server.key
# (localhost, 127.0.0.1, ::1), a certificate and key per development client
# (gp, gp2, ris, ris-bachaumont, ris-drouot, practice, auditor), unlisted.pem/key
# (signed by the CA but in no client table, for tests), notifier.pem/key (the
# client certificate the gateway presents to Subscription endpoints),
# receiver.pem/key (a GP software's notification endpoint: localhost,
# 127.0.0.1, ::1), and clients.json, the client table the gateway reads without
# --config. Keys are EC P-256. Never use these outside development.
set -eu
dir=${1:-certs/dev}
days=825
mkdir -p "$dir"
umask 077
cd "$dir"

ext() { # name kind san
    printf 'basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature,keyEncipherment\n'
    printf 'extendedKeyUsage=%s\nsubjectKeyIdentifier=hash\nauthorityKeyIdentifier=keyid\n' "$2"
    [ -n "$3" ] && printf 'subjectAltName=%s\n' "$3"
    return 0
}

issue() { # name subject kind san
    openssl ecparam -name prime256v1 -genkey -noout -out "$1.key" 2>/dev/null
    openssl req -new -key "$1.key" -subj "$2" -utf8 -out "$1.csr" 2>/dev/null
    ext "$1" "$3" "$4" > "$1.ext"
    openssl x509 -req -in "$1.csr" -CA ca.pem -CAkey ca.key -CAcreateserial -days $days \
        -sha256 -extfile "$1.ext" -out "$1.pem" 2>/dev/null
    rm -f "$1.csr" "$1.ext"
}

fingerprint() {
    openssl x509 -in "$1.pem" -noout -fingerprint -sha256 | sed 's/.*=//; s/://g' |
        tr 'A-F' 'a-f'
}

openssl ecparam -name prime256v1 -genkey -noout -out ca.key 2>/dev/null
openssl req -x509 -new -key ca.key -sha256 -days $days -utf8 \
    -subj "/C=FR/O=Referral Gateway Development/CN=Development CA" \
    -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" \
    -out ca.pem 2>/dev/null

issue server "/C=FR/O=Referral Gateway Development/CN=localhost" serverAuth \
    "DNS:localhost,IP:127.0.0.1,IP:::1"
issue gp "/C=FR/L=Paris/O=Cabinet Médical Montorgueil/CN=Dr Claire Martin" clientAuth ""
issue gp2 "/C=FR/L=Paris/O=Maison de Santé Batignolles/CN=Dr Karim Benali" clientAuth ""
issue ris "/C=FR/L=Paris/O=RIS Bachaumont Drouot/CN=ris" clientAuth ""
issue ris-bachaumont "/C=FR/L=Paris/O=Bachaumont Radiology/CN=ris-bachaumont" clientAuth ""
issue ris-drouot "/C=FR/L=Paris/O=Clinique Drouot/CN=ris-drouot" clientAuth ""
issue practice "/C=FR/L=Paris/O=Radiologie Bachaumont Drouot/CN=practice" clientAuth ""
issue auditor "/C=FR/L=Paris/O=Délégué à la protection des données/CN=auditor" clientAuth ""
issue unlisted "/C=FR/O=Unlisted Practice/CN=unlisted" clientAuth ""
issue notifier "/C=FR/O=Referral Gateway Development/CN=fhir-gateway notifications" clientAuth ""
issue receiver "/C=FR/L=Paris/O=Cabinet Médical Montorgueil/CN=localhost" serverAuth \
    "DNS:localhost,IP:127.0.0.1,IP:::1"
chmod 644 ./*.pem

cat > clients.json <<JSON
{
  "clients": [
    {"name": "gp", "fingerprint": "$(fingerprint gp)", "role": "gp",
     "organization": {"id": "montorgueil", "name": "Cabinet Médical Montorgueil",
                      "system": "urn:oid:1.2.250.1.71.4.2.2", "value": "750000001"}},
    {"name": "gp2", "fingerprint": "$(fingerprint gp2)", "role": "gp",
     "organization": {"id": "batignolles", "name": "Maison de Santé Batignolles",
                      "system": "urn:oid:1.2.250.1.71.4.2.2", "value": "750000002"}},
    {"name": "ris", "fingerprint": "$(fingerprint ris)", "role": "ris",
     "organization": {"id": "ris-paris", "name": "RIS Bachaumont Drouot"},
     "sites": ["bachaumont", "drouot"]},
    {"name": "ris-bachaumont", "fingerprint": "$(fingerprint ris-bachaumont)", "role": "ris",
     "organization": {"id": "bachaumont", "name": "Bachaumont Radiology"},
     "sites": ["bachaumont"]},
    {"name": "ris-drouot", "fingerprint": "$(fingerprint ris-drouot)", "role": "ris",
     "organization": {"id": "drouot", "name": "Clinique Drouot"}, "sites": ["drouot"]},
    {"name": "practice", "fingerprint": "$(fingerprint practice)", "role": "practice",
     "organization": {"id": "radiologie-paris", "name": "Radiologie Bachaumont Drouot"},
     "sites": ["bachaumont", "drouot"]},
    {"name": "auditor", "fingerprint": "$(fingerprint auditor)", "role": "auditor",
     "organization": {"id": "dpo", "name": "Délégué à la protection des données"}}
  ]
}
JSON
echo "development PKI written to $dir"
