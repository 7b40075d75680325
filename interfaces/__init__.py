"""The user-facing interfaces over `graphs.EditSession`: web editor, HTTP API, MCP server, LangChain tool.

Each is built by a factory (`web.build_ui`, `api.create_app`, `mcp_server.create_mcp_server`,
`langchain_tool.make_edit_tool`) and `cli.register(app)` adds `ui`, `serve` and `mcp` to the CLI.
Nothing is imported here so `import interfaces` stays free of gradio, fastapi and mcp.
"""
