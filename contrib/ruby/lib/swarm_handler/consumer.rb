# frozen_string_literal: true

module SwarmHandler
  # Subclass it and define #consume(messages), as in Karafka. Every message
  # counts as handled unless #consume marks it otherwise:
  #
  # - mark_as_failed(message, reason): it failed; the node retries it (with
  #   ordering = "partition", in order) and then skips or dead-letters it;
  # - mark_as_deferred(message): not handled, deliver it again (no attempt
  #   counted), e.g. for the later messages of a partition whose message failed.
  #
  # An exception out of #consume fails every message of the batch with its
  # class and text. One consumer object lives as long as the handler process.
  class Consumer
    JSON_DESERIALIZER = ->(message) { JSON.parse(message.raw_payload) }

    class << self
      # The deserializer #payload uses, a callable given the message: JSON
      # (Karafka's default) unless a subclass says `deserializer ->(m) { ... }`.
      def deserializer(callable = nil)
        @deserializer = callable if callable
        @deserializer || (superclass.respond_to?(:deserializer) ? superclass.deserializer : JSON_DESERIALIZER)
      end
    end

    def consume(_messages)
      raise NotImplementedError, "#{self.class} must define consume(messages)"
    end

    # Called once when the node closes the input (the handler is stopping).
    def shutdown; end

    def mark_as_consumed(message)
      results[message.object_id] = nil
    end

    def mark_as_failed(message, reason)
      results[message.object_id] = SwarmHandler.fail_line(reason)
    end

    def mark_as_deferred(message)
      results[message.object_id] = "defer"
    end

    # Runs #consume on a batch and returns its answer lines (swarm-handler(7)).
    def answer(messages)
      @results = {}
      begin
        consume(messages)
      rescue StandardError => e
        return "#{SwarmHandler.fail_line("#{e.class}: #{e.message}")}\n" * messages.size
      end
      return "ok #{messages.size}\n" if @results.values.all?(&:nil?)

      messages.map { |m| @results[m.object_id] || "ok" }.join("\n") << "\n"
    end

    private

    def results
      @results ||= {}
    end
  end
end
