"""The Lark grammar of the loss language, shipped inside the package (`loss.lark`)."""
