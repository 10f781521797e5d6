# Create a blob container on Azurite (path-style, the well-known dev
# account): python3 azure_container.py PORT NAME. object_store cannot
# create containers; this is one SharedKey-signed Create Container call.
import base64, hashlib, hmac, http.client, sys
from email.utils import formatdate

ACCOUNT = "devstoreaccount1"
KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
port, name = int(sys.argv[1]), sys.argv[2]
date = formatdate(usegmt=True)
version = "2021-08-06"
to_sign = "PUT" + "\n" * 12 + f"x-ms-date:{date}\nx-ms-version:{version}\n" \
    + f"/{ACCOUNT}/{ACCOUNT}/{name}\nrestype:container"
signature = base64.b64encode(
    hmac.new(base64.b64decode(KEY), to_sign.encode(), hashlib.sha256).digest()).decode()
conn = http.client.HTTPConnection("127.0.0.1", port)
conn.request("PUT", f"/{ACCOUNT}/{name}?restype=container", headers={
    "x-ms-date": date, "x-ms-version": version,
    "Authorization": f"SharedKey {ACCOUNT}:{signature}", "Content-Length": "0"})
reply = conn.getresponse()
body = reply.read()
if reply.status not in (201, 409):
    sys.exit(f"creating container {name}: HTTP {reply.status} {body!r}")
