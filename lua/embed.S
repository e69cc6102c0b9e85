/* lua/embed.S: the Lua modules of lua/ compiled into the binary, so that
 * the executable needs no files beside it. Paths are relative to the top
 * of the tree, where make runs the assembler. */
	.section .rodata
	.global script_prelude, script_prelude_end
	.global script_report, script_report_end
script_prelude:
	.incbin "lua/fileserv.lua"
script_prelude_end:
	.byte 0
script_report:
	.incbin "lua/report.lua"
script_report_end:
	.byte 0
	.section .note.GNU-stack,"",@progbits
