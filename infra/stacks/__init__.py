"""Stacks of the order-hub CDK app, and the plain-Python model they are built from."""
