SwarmCtl.main(GlobalOptions.reorder(Array(CommandLine.arguments.dropFirst())))
