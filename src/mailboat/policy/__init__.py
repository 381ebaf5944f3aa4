"""Policy: filters that decide at each SMTP phase; they return verdicts and never touch sockets."""

from mailboat.policy.context import SessionInfo, TransactionInfo
from mailboat.policy.filter import Filter
from mailboat.policy.pipeline import Pipeline
from mailboat.policy.verdict import CONTINUE, Verdict

__all__ = ["CONTINUE", "Filter", "Pipeline", "SessionInfo", "TransactionInfo", "Verdict"]
