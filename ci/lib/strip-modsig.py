#!/usr/bin/env python3
"""strip-modsig.py MODULE.ko -- drop the module's appended PKCS#7 signature, in place, if it has one."""
import struct
import sys

MAGIC = b"~Module signature appended~\n"
path = sys.argv[1]
data = open(path, "rb").read()
if data.endswith(MAGIC):
    # struct module_signature (12 bytes, sig_len big-endian last) precedes the magic.
    sig_len = struct.unpack(">I", data[-len(MAGIC) - 4:-len(MAGIC)])[0]
    open(path, "wb").write(data[:len(data) - len(MAGIC) - 12 - sig_len])
