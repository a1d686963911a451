"""The AWS CDK app that deploys order-hub (see infra/README.md). Not shipped to Lambda."""
