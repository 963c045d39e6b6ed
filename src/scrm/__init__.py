"""scrm-workbench: reproducible social-CRM research on the Customer Support on Twitter dataset."""

__version__ = "0.1.0"
