"""courier: durable outbound webhook delivery on PostgreSQL."""

__version__ = "0.2.0"
