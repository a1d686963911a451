"""The store-credit and voucher ledger: a liability kept beside the orders, written in their transactions."""
