"""The audit trail: who registered, promoted, packaged, deployed, updated, rolled back, stopped or
waived what, and when, in the workspace database.

It sits at the bottom of the layers so that every part of the workbench (the registry, packaging,
deployment, governance) records to it without importing anything above itself::

    import workbench as wb
    wb.audit_log(model="churn", since="7d")      # one row per action, oldest first
"""

from workbench.audit.trail import (
    ACTIONS,
    AUDIT_COLUMNS,
    AuditRecord,
    ShareMove,
    append,
    audit_log,
    parse_since,
    record,
    record_share_changes,
)

__all__ = ["ACTIONS", "AUDIT_COLUMNS", "AuditRecord", "ShareMove", "append", "audit_log", "parse_since", "record",
           "record_share_changes"]
