"""The AWS sinks: ``sns``, ``sqs``, ``kinesis``, ``firehose``, ``eventbridge``, ``cloudwatch``.

One module per service; :mod:`shipper.sinks.aws.common` holds what they share: credentials
(the AWS default chain, plus ``role_arn``), the endpoint, batching to each API's limits, the
mapping of per-entry failures to the pipeline's Outcome, and errors in one line.
"""
