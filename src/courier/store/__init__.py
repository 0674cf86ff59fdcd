"""The one seam to PostgreSQL: named SQL blocks and typed functions over them."""
