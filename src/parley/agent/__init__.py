"""Tools Parley runs itself: MCP servers listed in the settings (`servers`), and the loop that lets a chat
call them and answers with what they returned (`loop`)."""
