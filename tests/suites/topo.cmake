# The topo layer (graphs, mixing weights, A2CiD2 constants) and the neighbour exchange: loopback here,
# mpirun with 1-8 ranks below.
add_executable(sparcol_topo_tests topo/test_topo.cpp)
target_link_libraries(sparcol_topo_tests PRIVATE sparcol_test_common sparcol GTest::gtest_main sparcol_warnings)
gtest_discover_tests(sparcol_topo_tests PROPERTIES LABELS "unit;topo" TIMEOUT 120)

add_executable(sparcol_mpi_topo_tests topo/test_neighbor_mpi.cpp)
target_link_libraries(sparcol_mpi_topo_tests PRIVATE sparcol_mpi_test_main sparcol_test_common sparcol_warnings)
sparcol_add_mpi_test(sparcol_mpi_topo_tests RANKS 1 2 3 4 5 6 7 8 LABELS mpi topo TIMEOUT 120)

# The decentralized methods (dpsgd, relaysgd, powergossip) on LoopbackBackend.
add_executable(sparcol_decentralized_tests topo/test_decentralized.cpp)
target_link_libraries(sparcol_decentralized_tests PRIVATE sparcol_test_common sparcol GTest::gtest_main sparcol_warnings)
gtest_discover_tests(sparcol_decentralized_tests PROPERTIES LABELS "coll;topo" TIMEOUT 120)

# The asynchronous pairing protocol and a2cid2 / async-gossip on LoopbackBackend.
add_executable(sparcol_pair_gossip_tests topo/test_pair_gossip.cpp)
target_link_libraries(sparcol_pair_gossip_tests PRIVATE sparcol_test_common sparcol GTest::gtest_main sparcol_warnings)
gtest_discover_tests(sparcol_pair_gossip_tests PROPERTIES LABELS "coll;topo" TIMEOUT 120)
