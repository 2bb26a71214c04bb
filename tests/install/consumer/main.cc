// The C++ SDK's quick start (clients/cpp/README.md), a program of its own:
// submit a job, handle it with a Worker, wait for the result. It dials
// $JOBWIRE_ADDR, else jobwired's default address (default_address.h).
#include <iostream>
#include <thread>

#include "clients/cpp/client.h"
#include "clients/cpp/version.h"
#include "clients/cpp/worker.h"

int main() {
  // Or Client("unix:/path/jobwire.sock"), Client("127.0.0.1:50051").
  jobwire::sdk::Client client;
  jobwire::v1::Job job;
  job.set_kind("resize");
  job.set_queue("images");
  absl::StatusOr<jobwire::v1::SubmitJobResponse> submitted =
      client.SubmitJob(job, "upload-42");
  if (!submitted.ok()) {
    std::cerr << submitted.status() << "\n";  // names the address it tried
    return 1;
  }

  jobwire::sdk::Worker worker(&client, {.queues = {"images"}, .slots = 4});
  worker.Handle(
      "resize",
      [](jobwire::sdk::Task& task) -> absl::StatusOr<jobwire::v1::JobResult> {
        task.Progress(1, 2, "resizing");
        if (task.stopping())
          return jobwire::v1::JobResult();  // cancelled, paused or lease lost
        return jobwire::v1::JobResult();    // the job ends SUCCEEDED
      });
  std::thread runner([&] { worker.Run().IgnoreError(); });

  absl::StatusOr<jobwire::v1::Job> done = client.WaitJob(submitted->job().id());
  worker.Stop();
  runner.join();
  if (!done.ok()) {
    std::cerr << done.status() << "\n";
    return 1;
  }
  std::cout << "jobwire " << jobwire::sdk::kVersion << ": " << done->id() << " "
            << jobwire::v1::Job::State_Name(done->state()) << "\n";
  return done->state() == jobwire::v1::Job::STATE_SUCCEEDED ? 0 : 1;
}
