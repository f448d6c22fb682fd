module coronet/peers

go 1.19
