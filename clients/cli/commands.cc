// The command table of `jobwire`: one line per command file.
#include "clients/cli/cli.h"

namespace jobwire::cli {

CommandList AllCommands() {
  CommandList commands;
  AddServerCommands(&commands);  // server_commands.cc: health, info
  // jobs_commands.cc: submit, submit-batch, get, list, watch, cancel,
  // retry, explain
  AddJobCommands(&commands);
  AddWorkerCommand(&commands);  // worker_command.cc: worker
  // queue_commands.cc: pause, resume, queues, set-queue, update
  AddQueueCommands(&commands);
  AddWebhookCommands(&commands);  // webhook_command.cc: webhook verify
  // webhook_delivery_commands.cc: webhooks (list, redeliver)
  AddWebhookDeliveryCommands(&commands);
  return commands;
}

}  // namespace jobwire::cli
