"""Code drkit deploys to AWS Lambda (the payment processor of each region).

Empty until the compute-tier issue: the foundation and data tier deploy no functions yet.
"""
