"""The two services: `serving.lookup` (precomputed predictions of the served snapshot, by entity key)
and `serving.realtime` (fresh predictions from the champion); what they share over HTTP is in
`serving.http` and `serving.metrics`, and both read the prediction store through `serving.store_reader`."""
