"""Returns, exchanges and refunds: the second half of an order's life (issue #16).

- model.py: a return as the order keeps it (status, lines, label, inspection, money, resolution);
- policy.py: the returns policy per store (window, non-returnable SKUs, label payer, fees, credit bonus);
- events.py: channel returns (Shopify, Amazon) and the 3PL's receipt and inspection, in domain words;
- ports.py: what returns ask of the carrier, the 3PL and the channels.
"""
