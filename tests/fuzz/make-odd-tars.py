"""Writes tar fuzz seeds that no tar writes: hostile names, metadata meant to grow memory, odd pax
values, links with data, broken sparse maps. Usage: make-odd-tars.py DIR (called by make-seeds.sh).
Each seed starts with the two bytes the tar target reads as where to cut the archive."""
import sys


def header(name, type_, size=0, link=b"", mode=0o644):
    block = bytearray(512)
    block[0:len(name[:100])] = name[:100]
    block[100:108] = b"%07o\0" % mode
    block[108:124] = b"%07o\0%07o\0" % (0, 0)
    block[124:136] = b"%011o\0" % size
    block[136:148] = b"%011o\0" % 1000000000
    block[156:157] = type_
    block[157:157 + len(link[:100])] = link[:100]
    block[257:265] = b"ustar\x0000"
    block[148:156] = b" " * 8
    block[148:155] = b"%06o\0" % sum(block)
    return bytes(block)


def data(content):
    return content + b"\0" * (-len(content) % 512)


def record(key, value):
    rest = len(key) + len(value) + 3
    length = rest + 1
    while len(str(length)) + rest != length:
        length += 1
    return b"%d %s=%s\n" % (length, key, value)


def pax(records, type_=b"x"):
    body = b"".join(record(k, v) for k, v in records)
    return header(b"PaxHeaders/x", type_, len(body)) + data(body)


def file(name, content):
    return header(name, b"0", len(content)) + data(content)


END = b"\0" * 1024
seeds = {
    "nul-names": pax([(b"path", b"x/..\0y")]) + header(b"p", b"5", mode=0o777)
    + pax([(b"linkpath", b"a\0/etc")]) + header(b"s", b"2") + file(b"after", b"ok") + END,
    "escape-names": pax([(b"path", b"esc\x1b[31m\nred")]) + file(b"p", b"x") + END,
    "many-headers": b"".join(pax([(b"k%d.%d" % (h, i), b"v") for i in range(200)]) for h in range(5))
    + pax([(b"g%d" % i, b"") for i in range(300)], b"g") + file(b"f", b"1") + END,
    "odd-pax-values": pax([(b"mtime", b"+1234567890.5x"), (b"size", b"0004"), (b"uid", b" 12"), (b"gid", b"-1")])
    + file(b"f", b"abcd") + pax([(b"path", b""), (b"uname", b"")]) + file(b"g", b"") + END,
    "links-with-data": file(b"t", b"abc") + pax([(b"size", b"512")]) + header(b"h", b"1", 0, b"t")
    + header(b"ghost", b"0") + pax([(b"size", b"3")]) + header(b"f", b"6") + data(b"xyz") + END,
    "broken-sparse": pax([(b"GNU.sparse.size", b"100"), (b"GNU.sparse.map", b"90,20")]) + file(b"a", b"x" * 20)
    + pax([(b"GNU.sparse.major", b"1"), (b"GNU.sparse.minor", b"0"), (b"GNU.sparse.realsize", b"9")])
    + file(b"b", b"2\n0\n3\n5\n") + file(b"c", b"") + END,
}
for name, archive in seeds.items():
    with open(f"{sys.argv[1]}/{name}", "wb") as out:
        out.write(b"\x01\x37" + archive)
