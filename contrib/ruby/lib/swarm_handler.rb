# frozen_string_literal: true

require "json"
require_relative "swarm_handler/version"
require_relative "swarm_handler/message"
require_relative "swarm_handler/messages"
require_relative "swarm_handler/framing"
require_relative "swarm_handler/consumer"

# Write a swarm exec handler in Ruby, the way a Karafka consumer is written
# (swarm-handler(7)):
#
#   require "swarm_handler"
#
#   class OrdersConsumer < SwarmHandler::Consumer
#     def consume(messages)
#       messages.each do |message|
#         order = message.payload            # JSON by default; nil for a tombstone
#         next mark_as_failed(message, "no total") unless order["total"]
#         Orders.store(order)
#       end
#     end
#   end
#
#   SwarmHandler.run(OrdersConsumer)
#
# swarm does Kafka: the node fetches, commits after your answers, retries
# what failed (in partition order by default) and dead-letters what keeps
# failing. Standard library only.
module SwarmHandler
  # The node sent something this library does not understand.
  class ProtocolError < StandardError; end

  module_function

  # Reads batches from +input+ until the node closes it, calls the consumer's
  # #consume for each and writes the answers to +output+. The framing is the
  # one the node says in SWARM_HANDLER_PROTOCOL (1 or 2).
  def run(consumer_class, input: $stdin, output: $stdout, protocol: ENV.fetch("SWARM_HANDLER_PROTOCOL", "1"))
    input.binmode
    consumer = consumer_class.new
    Framing.batches(input, protocol, consumer_class.deserializer) do |batch|
      output.write(consumer.answer(Messages.new(batch)))
      output.flush
    end
  rescue Errno::EPIPE
    nil # the node is gone or stopping
  ensure
    consumer&.shutdown
  end

  # The answer text for a result (a String like "fail why"): whitespace in a
  # reason becomes single spaces, at most 500 characters.
  def fail_line(reason)
    text = reason.to_s.split.join(" ")[0, 500]
    text.empty? ? "fail" : "fail #{text}"
  end
end
