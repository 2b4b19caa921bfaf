#!/usr/bin/python3
"""Writes the named RADIUS accounting inputs of corpus/radius/ (tests/fuzz/README.md).

Each malformed packet is named <reason>-<what>, the reason parse_accounting_request must refuse it
with (core/radius.h; the unit test RadiusCorpus checks that), good ones good-<what>. Packets are
signed with the fuzz target's secret "testing123" (MD5 from Python's hashlib, independently of the
daemon's), except those meant to fail the authenticator. The good-radclient-* files were captured
from radclient (freeradius-utils 3.2.1) and are not written here.
Usage: tests/fuzz/radius_corpus.py [DIR] (default: corpus/radius next to this file).
"""
import hashlib
import os
import struct
import sys

SECRET = b"testing123"


def attr(t, v):
    return bytes([t, len(v) + 2]) + v


def u32(t, n):
    return attr(t, struct.pack(">I", n))


def packet(attrs, code=4, ident=7, length=None, secret=SECRET, pad=b""):
    body = b"".join(attrs)
    n = 20 + len(body) if length is None else length
    head = bytes([code, ident]) + struct.pack(">H", n)
    auth = hashlib.md5(head + bytes(16) + body[: max(0, n - 20)] + secret).digest()
    return head + auth + body + pad


START, STOP, INTERIM, ON, OFF = 1, 2, 3, 7, 8
USER = attr(1, b"alice")
SID = attr(44, b"s1")
IP = attr(8, bytes([198, 18, 1, 2]))
P6 = attr(97, bytes([0, 64]) + bytes.fromhex("fd000001000000000000000000000000"))
NASID = attr(32, b"bras1")


def session(status, *more):
    return [u32(40, status), USER, SID, NASID] + list(more)


def inputs():
    good = packet(session(START, IP))
    yield "good-start", good
    yield "good-start-padded", packet(session(START, IP), pad=b"\0" * 7)
    yield "good-start-ipv6", packet(session(START, P6, attr(123, bytes([0, 56]) + bytes.fromhex("fd000002000000")),
                                            attr(168, bytes.fromhex("fd000003000000000000000000000001"))))
    yield "good-interim", packet(session(INTERIM, IP, u32(55, 1733400000), u32(41, 3)))
    yield "good-stop", packet(session(STOP, IP))
    yield "good-stop-no-user", packet([u32(40, STOP), SID, NASID])
    yield "good-start-no-address", packet(session(START))
    yield "good-start-pool-marker", packet(session(START, attr(8, bytes([255, 255, 255, 254]))))
    yield "good-accounting-on", packet([u32(40, ON), NASID])
    yield "good-accounting-off", packet([u32(40, OFF), attr(4, bytes([198, 18, 0, 1]))])
    yield "good-unknown-attributes", packet(session(START, IP, attr(26, b"\0\0\x01\x37" + attr(1, b"x")), attr(200, b"")))
    yield "truncated-empty", b""
    yield "truncated-1", good[:1]
    yield "truncated-19", good[:19]
    yield "bad_length-0", good[:2] + b"\0\0" + good[4:]
    yield "bad_length-19", good[:2] + struct.pack(">H", 19) + good[4:]
    yield "bad_length-4097", good[:2] + struct.pack(">H", 4097) + good[4:] + bytes(4097)
    yield "bad_length-65535", good[:2] + b"\xff\xff" + good[4:]
    yield "length_past_datagram-cut", good[:-1]
    yield "length_past_datagram-plus1", packet(session(START, IP), length=len(good) + 1)[: len(good)]
    yield "length_past_datagram-header-only", good[:20]
    for code in (0, 1, 2, 3, 5, 11, 12, 40, 255):
        yield f"unknown_code-{code}", packet(session(START, IP), code=code)
    yield "bad_authenticator-wrong-secret", packet(session(START, IP), secret=b"wrong")
    yield "bad_authenticator-flipped", good[:4] + bytes([good[4] ^ 1]) + good[5:]
    yield "bad_authenticator-zero", good[:4] + bytes(16) + good[20:]
    yield "bad_authenticator-body-changed", good[:-1] + bytes([good[-1] ^ 0x80])
    yield "bad_authenticator-empty-secret", packet(session(START, IP), secret=b"")
    yield "attribute_too_short-len0", packet(session(START, IP) + [b"\x01\x00"])
    yield "attribute_too_short-len1", packet(session(START, IP) + [b"\x1a\x01"])
    yield "attribute_too_short-lone-type", packet(session(START, IP) + [b"\x01"])
    yield "attribute_past_end-by1", packet(session(START, IP) + [b"\x01\x05ab"])
    yield "attribute_past_end-255", packet([u32(40, START), b"\x01\xffalice"])
    yield "bad_attribute-empty-user", packet([u32(40, START), attr(1, b""), SID, IP])
    yield "bad_attribute-empty-session", packet([u32(40, START), USER, attr(44, b""), IP])
    yield "bad_attribute-status-3-octets", packet([attr(40, b"\0\0\1"), USER, SID, IP])
    yield "bad_attribute-ip-5-octets", packet(session(START, attr(8, bytes(5))))
    yield "bad_attribute-timestamp-8-octets", packet(session(START, IP, attr(55, bytes(8))))
    yield "bad_attribute-ipv6-address-15", packet(session(START, attr(168, bytes(15))))
    yield "bad_attribute-nas-ip-16", packet(session(START, IP, attr(4, bytes(16))))
    yield "duplicate_attribute-status", packet(session(START, IP) + [u32(40, STOP)])
    yield "duplicate_attribute-user", packet(session(START, IP) + [attr(1, b"bob")])
    yield "duplicate_attribute-framed-ip", packet(session(START, IP, attr(8, bytes([198, 18, 1, 3]))))
    yield "duplicate_attribute-session", packet(session(START, IP) + [attr(44, b"s2")])
    yield "duplicate_attribute-timestamp", packet(session(START, IP, u32(55, 1733400000), u32(55, 1733400001)))
    yield "no_status_type-none", packet([USER, SID, IP])
    yield "no_status_type-no-attributes", packet([])
    for st in (0, 4, 9, 15, 0xFFFFFFFF):
        yield f"unknown_status_type-{st}", packet([u32(40, st), USER, SID, IP])
    yield "no_session_id-start", packet([u32(40, START), USER, IP])
    yield "no_session_id-stop", packet([u32(40, STOP), USER, IP])
    yield "no_user_name-start", packet([u32(40, START), SID, IP])
    yield "no_user_name-interim", packet([u32(40, INTERIM), SID, IP])
    yield "bad_user_name-space", packet([u32(40, START), attr(1, b"al ice"), SID, IP])
    yield "bad_user_name-pipe", packet([u32(40, START), attr(1, b"a|b"), SID, IP])
    yield "bad_user_name-nul", packet([u32(40, START), attr(1, b"a\0b"), SID, IP])
    yield "bad_user_name-64-octets", packet([u32(40, START), attr(1, b"u" * 64), SID, IP])
    yield "bad_prefix-len0", packet(session(START, attr(97, bytes([0, 0]))))
    yield "bad_prefix-len129", packet(session(START, attr(97, bytes([0, 129]) + bytes(16))))
    yield "bad_prefix-short-for-len", packet(session(START, attr(97, bytes([0, 64]) + bytes(4))))
    yield "bad_prefix-17-octets", packet(session(START, attr(123, bytes([0, 64]) + bytes(17))))
    yield "bad_prefix-one-octet", packet(session(START, attr(123, bytes([0]))))
    yield "bad_timestamp-zero", packet(session(START, IP, u32(55, 0)))
    yield "bad_timestamp-1999", packet(session(START, IP, u32(55, 946684799)))
    yield "bad_timestamp-2106", packet(session(START, IP, u32(55, 0xFFFFFFFF)))
    yield "bad_delay-huge", packet(session(START, IP, u32(41, 0xFFFFFFFF)))
    yield "bad_delay-8-days", packet(session(START, IP, u32(41, 8 * 86400)))


def main():
    out = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                                              "corpus", "radius")
    os.makedirs(out, exist_ok=True)
    for name, data in inputs():
        with open(os.path.join(out, name), "wb") as f:
            f.write(data)


if __name__ == "__main__":
    main()
