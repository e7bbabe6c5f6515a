"""Model families. Importing this package registers them with timm."""
