"""Policy: filters that decide at each SMTP phase; they return verdicts and never touch sockets."""

from mailboat.policy.context import SessionInfo, State, TransactionInfo
from mailboat.policy.filter import Filter
from mailboat.policy.pipeline import Pipeline
from mailboat.policy.verdict import CONTINUE, Action, Symbol, Verdict

__all__ = ["CONTINUE", "Action", "Filter", "Pipeline", "SessionInfo", "State", "Symbol", "TransactionInfo",
           "Verdict"]
