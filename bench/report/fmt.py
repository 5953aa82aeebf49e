"""How figures are printed in docs/PERFORMANCE.md."""


def number(v):
    """A count or rate, short: 5.72M, 1.55G, 259,268, 24.6; text as is."""
    if isinstance(v, str):
        return v
    a = abs(v)
    if a >= 1e9:
        return "%.3gG" % (v / 1e9)
    if a >= 1e6:
        return "%.3gM" % (v / 1e6)
    if a >= 100:
        return "{:,.0f}".format(v)
    if a == int(a):
        return "%d" % v
    return "%.3g" % v


def lower_median(items):
    """The middle one of `items` in sorted order (the lower of the two for
    an even count), or None when there are none: the report's rule for
    which round of several decides a figure."""
    ordered = sorted(items)
    return ordered[(len(ordered) - 1) // 2] if ordered else None


def to_float(v, default=0.0):
    """A figure read from a result file (number or text) as a float; an
    empty or missing one as `default`."""
    if v is None or v == "":
        return default
    return float(v)


def fixed(v, digits=2):
    """`v` with `digits` decimals (missing figures print as 0)."""
    return "%.*f" % (digits, to_float(v))


def quotient(a, b):
    """a / b rounded to 6 significant digits, as the figures of earlier
    documents were (awk's print), so that a ratio printed with fixed() reads
    the same from the same measurements."""
    return float("%.6g" % (to_float(a) / to_float(b)))


def or_dash(text):
    return text if text else "—"
