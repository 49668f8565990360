"""Projects: the unit of sharing. Every object belongs to one; members have roles."""
