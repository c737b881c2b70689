"""usage-bot: usage alerting and anomaly detection for the RemoveBGVideo usage API.

Pipeline: poll (source) -> store -> detect -> decide (alerts) -> notify.
"""

__version__ = "0.1.0"
