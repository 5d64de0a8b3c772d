"""Reference values for Eidetic's one-run privacy audit (Sources/Privacy/Audit.swift).

Steinke, Nasr and Jagielski (NeurIPS 2023), "Privacy Auditing with One (1) Training Run",
Algorithm 2: the p-value of v correct guesses out of r among m canaries under (eps, delta)-DP,
and the largest eps it rejects. Written from the paper's formulas with scipy's binomial, as an
independent check of the Swift code; Tests/PrivacyTests/AuditTests.swift holds its output.

    bench/.venv/bin/python bench/audit_reference.py
"""
import math

from scipy import stats


def p_value(m, r, v, eps, delta):
    q = 1 / (1 + math.exp(-eps))
    beta = stats.binom.sf(v - 1, r, q)          # P[Binomial(r, q) >= v]
    alpha, acc = 0.0, 0.0
    for i in range(1, v + 1):
        acc += stats.binom.pmf(v - i, r, q)      # P[v - i <= Binomial(r, q) < v]
        alpha = max(alpha, acc / i)
    return min(1.0, beta + alpha * delta * 2 * m)


def eps_lower_bound(m, r, v, delta, p=0.05):
    lo, hi = 0.0, 1.0
    if p_value(m, r, v, 0.0, delta) >= p:
        return 0.0
    while p_value(m, r, v, hi, delta) < p:
        lo, hi = hi, hi * 2
    for _ in range(60):
        mid = (lo + hi) / 2
        if p_value(m, r, v, mid, delta) < p:
            lo = mid
        else:
            hi = mid
    return lo


CASES = [  # m, r, v, eps, delta
    (1000, 100, 80, 1.0, 0.0), (1000, 100, 80, 1.0, 1e-5), (1000, 1000, 600, 0.5, 1e-5),
    (64, 64, 64, 3.0, 0.0), (64, 64, 64, 3.0, 0.01), (5000, 200, 190, 2.0, 1e-4),
    (100, 10, 3, 0.2, 0.0), (100000, 100000, 73000, 0.99, 1e-5),
]
if __name__ == "__main__":
    print("// m, r, v, eps, delta, p-value, eps lower bound at p = 0.05")
    for m, r, v, eps, delta in CASES:
        print(f"({m}, {r}, {v}, {eps}, {delta}, {float(p_value(m, r, v, eps, delta))!r}, {float(eps_lower_bound(m, r, v, delta))!r}),")
