# Dead and stopped peers under mpirun (docs/reliability.md): every survivor ends, non-zero, within the
# timeout + 10 s, naming the operation and the failed rank.
if(TARGET sparcol-toy)
  foreach(np 2 3 4)
    foreach(sig KILL STOP)
      add_test(NAME fault_sig${sig}_np${np}
               COMMAND ${CMAKE_CURRENT_SOURCE_DIR}/faults/kill_rank.sh $<TARGET_FILE:sparcol-toy> ${MPIEXEC_EXECUTABLE}
                       ${np} ${sig})
      set_tests_properties(fault_sig${sig}_np${np} PROPERTIES LABELS "faults;mpi" TIMEOUT 60 PROCESSORS 2)
    endforeach()
  endforeach()
  # CoCoD-SGD: the peer dies or stops while the progress thread's all-reduce (of a 10^6-element model,
  # tau = 8) is in flight (coll/background.hpp): the same promise, with no hang in the thread or at exit.
  foreach(sig KILL STOP)
    add_test(NAME fault_cocod_sig${sig}_np3
             COMMAND ${CMAKE_CURRENT_SOURCE_DIR}/faults/kill_rank.sh $<TARGET_FILE:sparcol-toy> ${MPIEXEC_EXECUTABLE}
                     3 ${sig} --method cocod-sgd --period 8 --setting 2 --d 1000000)
    set_tests_properties(fault_cocod_sig${sig}_np3 PROPERTIES LABELS "faults;mpi" TIMEOUT 60 PROCESSORS 2)
  endforeach()
endif()
# a2cid2 and async-gossip (topo::PairGossip): a neighbour dies or stops while the communication thread
# pairs ranks behind the training (sparcol-train's synthetic model; the main thread rarely waits there,
# so the survivors' named error comes from the thread: "timed out ... in pair gossip ... rank R").
if(TARGET sparcol-train)
  foreach(sig KILL STOP)
    add_test(NAME fault_a2cid2_sig${sig}_np4
             COMMAND ${CMAKE_CURRENT_SOURCE_DIR}/faults/kill_rank.sh $<TARGET_FILE:sparcol-train> ${MPIEXEC_EXECUTABLE}
                     4 ${sig} --params 100000 --optimizer a2cid2 --topology ring)
    set_tests_properties(fault_a2cid2_sig${sig}_np4 PROPERTIES LABELS "faults;mpi" TIMEOUT 60 PROCESSORS 2)
    add_test(NAME fault_async_gossip_sig${sig}_np3
             COMMAND ${CMAKE_CURRENT_SOURCE_DIR}/faults/kill_rank.sh $<TARGET_FILE:sparcol-train> ${MPIEXEC_EXECUTABLE}
                     3 ${sig} --params 100000 --optimizer async-gossip --topology ring --comm-rate 2)
    set_tests_properties(fault_async_gossip_sig${sig}_np3 PROPERTIES LABELS "faults;mpi" TIMEOUT 60 PROCESSORS 2)
  endforeach()
endif()
