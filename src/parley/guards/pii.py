"""Personal data: emails, phone numbers, payment cards (Luhn), IBANs (mod 97), IP addresses, and national
ids that carry a checksum (Spanish DNI/NIE letter, Dutch BSN 11-test, French NIR key)."""

from __future__ import annotations

import ipaddress
import re

from parley.guards.base import Finding

EMAIL = re.compile(r"\b[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}\b")
PHONE = re.compile(r"(?<![\w+])(?:\+\d{1,3}[\s.-]?)?(?:\(\d{1,4}\)[\s.-]?)?\d{2,4}(?:[\s.-]\d{2,4}){1,4}(?![\w-])")
DATE = re.compile(r"\d{4}-\d{2}-\d{2}|\d{2}[./-]\d{2}[./-]\d{4}")
CARD = re.compile(r"(?<!\d)(?:\d[ -]?){12,18}\d(?!\d)")
IBAN = re.compile(r"\b[A-Z]{2}\d{2}(?: ?[A-Z0-9]{4}){2,7}(?: ?[A-Z0-9]{1,4})?\b")
IPV4 = re.compile(r"(?<![\d.])(?:\d{1,3}\.){3}\d{1,3}(?![\d.])")
IPV6 = re.compile(r"(?<![\w:])(?:[0-9A-Fa-f]{1,4}:){2,7}[0-9A-Fa-f]{1,4}(?![\w:])|(?<![\w:])[0-9A-Fa-f:]*::[0-9A-Fa-f:]+")  # noqa: E501
DNI = re.compile(r"\b([XYZ]?)(\d{7,8})[- ]?([A-Z])\b")
BSN = re.compile(r"(?<!\d)\d{9}(?!\d)")
NIR = re.compile(r"(?<!\d)([12]\s?\d{2}\s?\d{2}\s?(?:\d{2}|2A|2B)\s?\d{3}\s?\d{3})\s?(\d{2})(?!\d)")
# every pattern above needs a digit, an "@" (email) or a ":" (IPv6): text without one is scanned no further (the
# output guard scans each released word with the text before it, so prose is the common case)
MAYBE = re.compile(r"[\d@:]")


def luhn_ok(digits: str) -> bool:
    total, odd = 0, False
    for ch in reversed(digits):
        d = int(ch)
        if odd:
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
        odd = not odd
    return total % 10 == 0


def iban_ok(iban: str) -> bool:
    s = iban.replace(" ", "")
    if not 15 <= len(s) <= 34:
        return False
    moved = s[4:] + s[:4]
    return int("".join(str(int(c, 36)) for c in moved)) % 97 == 1


def dni_ok(prefix: str, number: str, letter: str) -> bool:
    value = int(str("XYZ".index(prefix)) + number) if prefix else int(number)
    return "TRWAGMYFPDXBNJZSQVHLCKE"[value % 23] == letter


def bsn_ok(digits: str) -> bool:
    weights = [9, 8, 7, 6, 5, 4, 3, 2, -1]
    return sum(int(d) * w for d, w in zip(digits, weights, strict=True)) % 11 == 0 and digits != "000000000"


def nir_ok(body: str, key: str) -> bool:
    s = body.replace(" ", "").replace("2A", "19").replace("2B", "18")
    return 97 - int(s) % 97 == int(key)


class PIIScanner:
    name = "pii"

    def scan(self, text: str) -> list[Finding]:
        if MAYBE.search(text) is None:
            return []
        return self.scan_all(text)

    def scan_all(self, text: str) -> list[Finding]:
        """Every pattern, without the first test (tests check that the test never skips a finding)."""
        found: list[Finding] = []

        def add(kind: str, m: re.Match[str], group: int = 0) -> None:
            found.append(Finding(self.name, kind, m.start(group), m.end(group)))

        for m in EMAIL.finditer(text):
            add("email", m)
        for m in CARD.finditer(text):
            digits = re.sub(r"\D", "", m.group())
            if 13 <= len(digits) <= 19 and luhn_ok(digits):
                add("credit_card", m)
        for m in IBAN.finditer(text):
            if iban_ok(m.group()):
                add("iban", m)
        for m in IPV4.finditer(text):
            if all(int(p) <= 255 for p in m.group().split(".")):
                add("ip_address", m)
        for m in IPV6.finditer(text):
            try:
                ipaddress.IPv6Address(m.group())
                add("ip_address", m)
            except ValueError:
                pass
        for m in DNI.finditer(text):
            if dni_ok(*m.groups()):
                add("national_id", m)
        for m in BSN.finditer(text):
            if bsn_ok(m.group()):
                add("national_id", m)
        for m in NIR.finditer(text):
            if nir_ok(*m.groups()):
                add("national_id", m)
        taken = [(f.start, f.end) for f in found]
        for m in PHONE.finditer(text):
            digits = re.sub(r"\D", "", m.group())
            inside = any(s <= m.start() < e or s < m.end() <= e for s, e in taken)
            plain = m.group().strip()
            if 7 <= len(digits) <= 15 and not inside and not IPV4.fullmatch(plain) and not DATE.fullmatch(plain):
                add("phone", m)
        return found
