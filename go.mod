module github.com/majordomo-go/majordomo

go 1.26.8

require github.com/pebbe/zmq4 v1.4.0
