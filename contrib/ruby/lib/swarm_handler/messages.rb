# frozen_string_literal: true

module SwarmHandler
  # The batch a #consume gets: Enumerable over its messages, in the order the
  # node handed them over (each partition's in offset order).
  class Messages
    include Enumerable

    def initialize(messages)
      @messages = messages
    end

    def each(&block)
      @messages.each(&block)
    end

    def size
      @messages.size
    end
    alias count size
    alias length size

    def empty?
      @messages.empty?
    end

    def last
      @messages.last
    end

    def to_a
      @messages.dup
    end
  end
end
