# Sourced by scripts/test and .ci/run: makes sure a RabbitMQ answers on 127.0.0.1:5672.

broker_up() { (exec 3<>/dev/tcp/127.0.0.1/5672) 2>/dev/null; }

# Starts the local RabbitMQ when it is installed but down; otherwise says how to get one.
ensure_broker() {
  if ! broker_up; then
    if command -v rabbitmq-server >/dev/null 2>&1; then
      echo "RabbitMQ does not answer on 127.0.0.1:5672; starting it."
      rabbitmq-server -detached || echo "rabbitmq-server -detached failed; waiting anyway."
      for _ in $(seq 1 90); do
        broker_up && break
        sleep 1
      done
    else
      echo "The tests need RabbitMQ on 127.0.0.1:5672 (guest/guest) and its rabbitmqctl: apt install rabbitmq-server (Debian/Ubuntu), or docker run -d -p 5672:5672 rabbitmq:3 (then some fault tests cannot run rabbitmqctl)." >&2
      return 1
    fi
  fi
  if command -v rabbitmqctl >/dev/null 2>&1; then
    # The port can open before the broker accepts logins.
    rabbitmqctl await_startup --timeout 60 >/dev/null 2>&1 || true
  fi
  if ! broker_up; then
    echo "RabbitMQ is still not answering on 127.0.0.1:5672: the broker tests cannot run." >&2
    return 1
  fi
}
