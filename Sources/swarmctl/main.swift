/// `swarmctl scale -2` reads naturally but looks like an option to the
/// parser: hand a negative count over as a positional argument.
var arguments = Array(CommandLine.arguments.dropFirst())
if arguments.first == "scale", !arguments.contains("--"),
   let i = arguments.firstIndex(where: { $0.count > 1 && $0.hasPrefix("-") && Int($0) != nil }) {
    let count = arguments.remove(at: i)
    arguments += ["--", count]
}
SwarmCtl.main(arguments)
