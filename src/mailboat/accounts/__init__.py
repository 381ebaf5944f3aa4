"""Mail accounts: who has a mailbox here and may submit mail (passwords stored hashed only)."""

from mailboat.accounts.users import UserError, UserStore

__all__ = ["UserError", "UserStore"]
