/* lua/embed.S: the Lua modules of lua/ compiled into the binary, so that
 * the executable needs no files beside it. Paths are relative to the top
 * of the tree, where make runs the assembler. Each module NAME gives the
 * symbols script_NAME and script_NAME_end (a NUL follows the text);
 * lua/script.c lists them for require. */
	.macro module name, file
	.global script_\name, script_\name\()_end
script_\name:
	.incbin "\file"
script_\name\()_end:
	.byte 0
	.endm

	.section .rodata
	module prelude, "lua/fileserv.lua"
	module report, "lua/report.lua"
	module stats, "lua/stats.lua"
	module matrix, "lua/matrix.lua"
	module compare, "lua/compare.lua"
	module html, "lua/html.lua"
	.section .note.GNU-stack,"",@progbits
