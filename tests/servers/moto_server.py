# Start moto's server (S3 and the rest of AWS, in memory) on loopback:
# python3 moto_server.py [PORT]. Port 0 or none picks a free port. Prints
# "listening <port>" once it accepts connections; runs until its standard
# input closes (or it is killed).
import sys

from moto.server import ThreadedMotoServer

port = int(sys.argv[1]) if len(sys.argv) > 1 else 0
server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
server.start()
print("listening %d" % server._server.port, flush=True)
sys.stdin.read()
server.stop()
