"""Stand-ins for the services the bot talks to, served over real loopback HTTP.

Not part of the pipeline: `demo`, `simulate`, the tests and the benchmarks use them in
place of the RemoveBGVideo usage API (`simulator`), the Slack Web API (`slack`) and
Slack's Socket Mode WebSocket (`socket_mode`).
"""
