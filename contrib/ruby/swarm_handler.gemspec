# frozen_string_literal: true

require_relative "lib/swarm_handler/version"

Gem::Specification.new do |spec|
  spec.name = "swarm_handler"
  spec.version = SwarmHandler::VERSION
  spec.summary = "Write a swarm exec handler in Ruby: a Karafka-style consumer (swarm-handler(7))"
  spec.description = "swarm runs a Kafka consumer as a swarm of processes; this gem is the handler side: " \
                     "subclass SwarmHandler::Consumer, define consume(messages), and swarm does Kafka."
  spec.authors = ["swarm"]
  spec.license = "Apache-2.0"
  spec.required_ruby_version = ">= 3.0"
  spec.files = Dir["lib/**/*.rb"] + ["README.md"]
  spec.require_paths = ["lib"]
end
