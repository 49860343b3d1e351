#!/usr/bin/env ruby
# frozen_string_literal: true

# An exec handler for swarm in Ruby, written as a Karafka consumer is, with
# swarm's Ruby kit: see swarm-handler(7) and contrib/ruby.
#
# Run by each node as [handler] kind = "exec", command = ["ruby", "handler.rb"]
# (add `protocol = 2` for the binary framing; the kit reads both). Logs to
# stderr, which swarmd shows with the node's slot.

$LOAD_PATH.unshift(File.expand_path("../contrib/ruby/lib", __dir__))
require "swarm_handler"

class EventsConsumer < SwarmHandler::Consumer
  # The values are not all JSON: keep the raw bytes, parse below.
  deserializer ->(message) { message.raw_payload }

  def initialize
    super
    @handled = 0
  end

  # Your work goes here. Every message counts as handled unless marked
  # failed or deferred; a tombstone (nil payload) means the key was deleted.
  def consume(messages)
    messages.each do |message|
      JSON.parse(message.payload) if message.payload&.start_with?("{")
    rescue JSON::ParserError => e # one bad message must not take the batch down
      mark_as_failed(message, e.message)
    end
    @handled += messages.size
    warn "handled #{@handled} messages" if @handled % 10_000 < messages.size
  end
end

SwarmHandler.run(EventsConsumer)
