"""Marketing data warehouse: extract SaaS exports, gate them, build trusted marts, publish."""

__version__ = "0.1.0"
