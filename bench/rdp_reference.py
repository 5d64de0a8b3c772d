"""Reference values of the RDP accountant tests (Tests/PrivacyTests/RDPAccountantTests.swift),
from Opacus's RDP analysis on its default orders. Run: bench/.venv/bin/python bench/rdp_reference.py
(needs `pip install opacus`)."""
import numpy as np
from opacus.accountants.analysis import rdp as R

orders = [1 + x / 10.0 for x in range(1, 100)] + list(range(12, 64))
cases = [(0.01, 1.1, 1000, 1e-5), (256 / 60000, 1.1, 60 * 235, 1e-5), (0.004, 0.8, 5000, 1e-5),
         (0.1, 4.0, 100, 1e-6), (1.0, 5.0, 10, 1e-5), (0.02, 0.5, 200, 1e-5)]
for q, s, t, d in cases:
    rdp = R.compute_rdp(q=q, noise_multiplier=s, steps=t, orders=orders)
    eps, order = R.get_privacy_spent(orders=orders, rdp=rdp, delta=d)
    classic = np.min(rdp + np.log(1 / d) / (np.array(orders) - 1))
    print((q, s, t, d), "improved", repr(float(eps)), "order", float(order), "classic", repr(float(classic)))
for q, s, a in [(0.01, 1.1, 2.5), (0.01, 1.1, 32), (0.3, 0.7, 1.5), (0.3, 0.7, 7)]:
    print("single step", (q, s, a), repr(float(R._compute_rdp(q, s, a))))
