#!/bin/bash
# snapshot of reductions per rabbit process label: conn name (reader/writer/channel), ra server names, wal
timeout 30 rabbitmqctl eval '
L = lists:foldl(fun(P, Acc) ->
  case erlang:process_info(P, [reductions, dictionary, registered_name]) of
    undefined -> Acc;
    [{reductions, R}, {dictionary, D}, {registered_name, N}] ->
      Lab = case proplists:get_value(process_name, D) of
        {rabbit_channel, {C, Nn}} -> {ch, C, Nn};
        {rabbit_reader, C} -> {rd, C};
        {rabbit_writer, {C, _}} -> {wr, C};
        {rabbit_writer, C} -> {wr, C};
        {K, {C, _}} when is_binary(C) -> {K, C};
        _ -> case N of [] -> other; _ -> {reg, N} end
      end,
      [{Lab, R} | Acc]
  end end, [], erlang:processes()),
M = lists:foldl(fun({K, R}, Acc) -> maps:update_with(K, fun(V) -> V + R end, R, Acc) end, #{}, L),
lists:foreach(fun({K, V}) -> io:format("~p\t~p~n", [K, V]) end, maps:to_list(M)), ok.' 2>&1
timeout 30 rabbitmqctl list_connections peer_port recv_cnt send_cnt recv_oct send_oct -q 2>/dev/null | awk '{print "conn\t"$1"\t"$2"\t"$3"\t"$4"\t"$5}'
