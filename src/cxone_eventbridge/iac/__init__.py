"""Infrastructure as code: targets files against the control plane, and a Terraform export.

- ``plan``: the pure diff of desired targets against remote ones (by name, field by field, secrets by
  fingerprint); ``remote``: reading the remote side; ``apply``: performing a plan with the client.
- ``importer``: remote targets as a targets file; ``schema``: the targets file's JSON Schema.
- ``terraform``: pure rendering of a state (format 4) and ``main.tf.json``; ``export``: writing them;
  ``drift``: an exported state against the remote targets.
"""
