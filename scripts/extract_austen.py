#!/usr/bin/env python3
"""Rebuilds data/persuasion.txt and data/northanger_abbey_1-5.txt from the Debian package
r-cran-janeaustenr (Jane Austen's novels as R data; the novels are in the public domain).

    apt-get download r-cran-janeaustenr && dpkg -x r-cran-janeaustenr_*.deb pkg
    python3 scripts/extract_austen.py pkg/usr/lib/R/site-library/janeaustenr/data data

The package's data/Rdata.rdb is R's lazy-load database: per object, a 4-byte big-endian length and a
zlib stream holding an XDR-serialized character vector (one element per line of the book). The index
Rdata.rdx (gzip) lists the objects in the order below; the objects follow each other in Rdata.rdb.
"""
import re
import struct
import sys
import zlib

OBJECTS = ["emma", "mansfieldpark", "northangerabbey", "persuasion", "prideprejudice", "sensesensibility"]


def read_objects(rdb_bytes):
    pos, out = 0, []
    while pos < len(rdb_bytes):
        d = zlib.decompressobj()
        out.append(d.decompress(rdb_bytes[pos + 4:]))
        pos = len(rdb_bytes) - len(d.unused_data)
    return out


def character_vector(blob):
    """Lines of an XDR-serialized STRSXP (R serialization versions 2 and 3)."""
    assert blob[:2] == b"X\n", "not an XDR serialization"
    be_int = lambda p: struct.unpack(">i", blob[p:p + 4])[0]
    version, pos = be_int(2), 14
    if version == 3:
        pos += 4 + be_int(pos)  # native encoding name
    assert be_int(pos) & 0xFF == 16, "not a character vector"
    n, pos = be_int(pos + 4), pos + 8
    lines = []
    for _ in range(n):
        assert be_int(pos) & 0xFF == 9, "not a CHARSXP"
        k, pos = be_int(pos + 4), pos + 8
        if k < 0:
            lines.append("")  # NA
            continue
        lines.append(blob[pos:pos + k].decode("utf-8"))
        pos += k
    return lines


def main():
    src, dst = sys.argv[1], sys.argv[2]
    objs = read_objects(open(f"{src}/Rdata.rdb", "rb").read())
    books = {name: "\n".join(character_vector(o)) + "\n" for name, o in zip(OBJECTS, objs)}
    open(f"{dst}/persuasion.txt", "w").write(books["persuasion"])
    na = books["northangerabbey"]
    end = re.search(r"\nCHAPTER 6\n", na).start()  # chapters 1-5 (and the author's advertisement)
    open(f"{dst}/northanger_abbey_1-5.txt", "w").write(na[:end].rstrip("\n") + "\n")


if __name__ == "__main__":
    main()
