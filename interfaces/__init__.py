"""Everything people use to reach the engine (`graphs.EditSession`), one module per surface.

- `cli` (the `brushedit` command: `commands`, `trace_cli`, `server_commands`, `cli_errors`),
- `api` (the HTTP API, its routes and its job store), `mcp_server`, `web` (the Gradio editor),
  `langchain_tool`,
- shared by them: `common` (the session seam, error bodies, uploads), `wording` (each surface
  words typed errors in its own terms), `roots` (readable folders), `terminal` and `trace_view`
  (rendering), `doctor` (the setup report).

Each server is built by a factory (`web.build_ui`, `api.create_app`,
`mcp_server.create_mcp_server`, `langchain_tool.make_edit_tool`). Nothing is imported here, so
`import interfaces` stays free of gradio, fastapi and mcp.
"""
