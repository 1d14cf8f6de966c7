"""Local stand-ins for Azure (never deployed; see .funcignore)."""
