"""Guards: small scanners behind one interface; policies decide block, redact or flag."""
